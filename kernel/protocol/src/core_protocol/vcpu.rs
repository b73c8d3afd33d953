//! REMAP_CA, CREATE_VCPU and DELETE_VCPU.

use super::{CoreProtocol, not_svsm};
use crate::error::CallError;
use crate::registry::Request;
use svsm_defs::PAGE_SIZE;
use svsm_defs::svsm::CallingAreaHeader;
use svsm_defs::vmsa::{Vmsa, VmsaCheckError};
use zerocopy::{FromZeros, IntoBytes};

impl CoreProtocol {
    /// REMAP_CA: RCX = the new Calling Area's GPA. The backend records it
    /// (the kernel serves the vCPU's next call from there); its header is
    /// zeroed so a stale `call_pending` there is not taken for a call.
    pub(super) fn remap_ca(&self, req: &mut Request<'_>) -> Result<(), CallError> {
        let gpa = req.regs.rcx;
        if !gpa.is_multiple_of(PAGE_SIZE) {
            return Err(CallError::InvalidParameter);
        }
        not_svsm(req.backend, gpa, PAGE_SIZE)?;
        let _vcpus = self.vcpus.lock();
        if gpa == req.ca_gpa {
            return Ok(());
        }
        if self.owned.lock().overlaps(gpa, PAGE_SIZE) {
            return Err(CallError::InvalidAddress);
        }
        req.backend.remap_ca(req.vcpu, gpa)?;
        self.owned.lock().move_ca(req.ca_gpa, gpa);
        req.mem
            .write(gpa, CallingAreaHeader::default().as_bytes())
            .map_err(CallError::from)
    }

    /// CREATE_VCPU: RCX = VMSA GPA, RDX = CAA GPA, R8[31:0] = APIC ID.
    /// The VMSA page is sealed (no guest write access) before it is copied,
    /// so the copy checked here is what runs.
    pub(super) fn create_vcpu(&self, req: &mut Request<'_>) -> Result<(), CallError> {
        let (vmsa_gpa, caa_gpa, apic_id) = (req.regs.rcx, req.regs.rdx, req.regs.r8 as u32);
        for gpa in [vmsa_gpa, caa_gpa] {
            if !gpa.is_multiple_of(PAGE_SIZE) {
                return Err(CallError::InvalidAddress);
            }
            not_svsm(req.backend, gpa, PAGE_SIZE)?;
        }
        if vmsa_gpa == caa_gpa {
            return Err(CallError::InvalidAddress);
        }
        let _vcpus = self.vcpus.lock();
        let _pvalidate = self.pvalidate.write();
        {
            let owned = self.owned.lock();
            if owned.overlaps(vmsa_gpa, PAGE_SIZE)
                || owned.overlaps(caa_gpa, PAGE_SIZE)
                || owned.is_ca(vmsa_gpa, PAGE_SIZE, req.ca_gpa)
            {
                return Err(CallError::InvalidAddress);
            }
        }
        req.backend.seal_vmsa(vmsa_gpa)?;
        let res = copy_and_check(req, vmsa_gpa, caa_gpa)
            .and_then(|vmsa| req.backend.create_vcpu(vmsa_gpa, caa_gpa, apic_id, vmsa));
        match res {
            Ok(()) => self.owned.lock().add_vcpu(vmsa_gpa, caa_gpa),
            Err(_) => req.backend.unseal_vmsa(vmsa_gpa),
        }
        res
    }

    /// DELETE_VCPU: RCX = the VMSA GPA of the vCPU to stop.
    pub(super) fn delete_vcpu(&self, req: &mut Request<'_>) -> Result<(), CallError> {
        let gpa = req.regs.rcx;
        if !gpa.is_multiple_of(PAGE_SIZE) {
            return Err(CallError::InvalidAddress);
        }
        not_svsm(req.backend, gpa, PAGE_SIZE)?;
        let _vcpus = self.vcpus.lock();
        req.backend.delete_vcpu(gpa)?;
        self.owned.lock().remove_vcpu(gpa);
        Ok(())
    }
}

/// The VMSA copied onto the heap (one read of the page) and checked.
fn copy_and_check(
    req: &mut Request<'_>,
    vmsa_gpa: u64,
    caa_gpa: u64,
) -> Result<alloc::boxed::Box<Vmsa>, CallError> {
    let mut vmsa = Vmsa::new_box_zeroed().map_err(|_| CallError::Busy)?;
    req.mem.read(vmsa_gpa, vmsa.as_mut_bytes())?;
    let features = req.backend.sev_features(req.vcpu);
    vmsa.check_new_vcpu(vmsa_gpa, caa_gpa, req.backend.guest_vmpl(), features)
        .map_err(|e| match e {
            VmsaCheckError::Unaligned | VmsaCheckError::OverlapsCallingArea => {
                CallError::InvalidAddress
            }
            VmsaCheckError::WrongVmpl(_)
            | VmsaCheckError::SvmeClear
            | VmsaCheckError::SevFeatures(_) => CallError::InvalidParameter,
        })?;
    Ok(vmsa)
}
